"""imgclf: the code shared by the pipeline stages, the web app and the command line."""
