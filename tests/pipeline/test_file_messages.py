"""File message data built from a path matches what trollstalker publishes."""

import datetime as dt

import pytest

from avoviirscollector.filenames import FilenameError
from avoviirscollector.pipeline.file_messages import file_message_data

NAME = "GITCO_j01_d20191021_t2327561_e2329203_b10131_c20191021233910734917_cspp_dev.h5"


def test_fields_are_those_the_workers_read():
    data = file_message_data("/viirs/sdr/" + NAME)
    assert data == {
        "segment": "GITCO",
        "platform_name": "NOAA-20",
        "orig_platform_name": "j01",
        "start_time": dt.datetime(2019, 10, 21, 23, 27, 56, 100000),
        "end_time": dt.datetime(2019, 10, 21, 23, 29, 20, 300000),
        "orbit_number": 10131,
        "proctime": dt.datetime(2019, 10, 21, 23, 39, 10, 734917),
        "source": "cspp_dev",
        "uri": "/viirs/sdr/" + NAME,
        "uid": NAME,
        "sensor": ["viirs"],
    }


def test_not_an_sdr_file_is_refused():
    with pytest.raises(FilenameError):
        file_message_data("/viirs/sdr/notes.txt")
