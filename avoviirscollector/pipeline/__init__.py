"""sdr/ to posttroll: the file announcer (trollstalker), one granule gatherer per product, the
nameserver, the 29092 republisher and the replay listener.
"""
