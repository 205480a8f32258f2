"""The application of engine ``spark`` (:mod:`.launcher`), alone in its folder: spark-submit puts the
application's folder first on ``sys.path``, where a sibling such as ``kubernetes.py`` would shadow a package."""
