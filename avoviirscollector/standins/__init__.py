"""real local servers for outside services (GINA, SMTP, Celestrak) and synthetic SDR files, for
tests, the demo and the benchmarks.
"""
