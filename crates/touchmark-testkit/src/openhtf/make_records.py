"""Writes the OpenHTF test records the test kit ships, with the real `openhtf` package.

    python3 -m venv venv && venv/bin/pip install openhtf==1.6.3
    venv/bin/python make_records.py

Each record is what openhtf's OutputToJSON callback writes for one run of a one-phase test:
SN-000400.json for a test started with DUT id SN-000400, UNKNOWN_DUT.json for one started
without a DUT id (openhtf then writes "UNKNOWN_DUT").
"""

import os

import openhtf as htf
from openhtf.output.callbacks import json_factory
from openhtf.util import units

HERE = os.path.dirname(os.path.abspath(__file__))


@htf.measures(htf.Measurement("vbat").in_range(3.2, 3.4).with_units(units.VOLT))
def power_on(test):
    test.measurements.vbat = 3.31


def run(dut, name):
    test = htf.Test(power_on, test_name="rf_suite", test_version="2.3.1")
    test.add_output_callbacks(
        json_factory.OutputToJSON(os.path.join(HERE, name), indent=2, sort_keys=True)
    )
    if dut is None:
        test.execute()
    else:
        test.execute(test_start=lambda: dut)


run("SN-000400", "SN-000400.json")
run(None, "UNKNOWN_DUT.json")
