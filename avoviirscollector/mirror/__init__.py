"""GINA to sdr/: which files to fetch (pure rules), the pycurl downloader, the memory of failed
files, and the mirror_gina program.
"""
