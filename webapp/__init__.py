"""The SketchDown web app (Gradio) over the ``sketchdown`` library.

``webapp.config.AppConfig`` says what to serve (weights, gallery, address), ``webapp.model.load_model``
loads the shared read-only model, ``webapp.demo.create_demo`` builds the ``gr.Blocks`` and
``webapp.demo.launch`` serves it. Importing this package loads nothing: ``app.py`` (the Spaces entry
point) and the tests build the model and demo explicitly from an ``AppConfig``.
"""
