"""avoviirscollector: mirror VIIRS SDR files from GINA and turn them into processing tasks."""

__version__ = "2.0.0"
