"""The independent check of CycloneDX JSON documents in the tests: cyclonedx-python-lib's strict
JSON schema validator (the CycloneDX project's own library, PyPI `cyclonedx-python-lib` with its
`json-validation` extra).

Usage: python3 cyclonedx_validate.py SPEC_VERSION FILE...
Prints one JSON object per file: {"file": ..., "valid": true|false, "error": "..."}.
Exits 0 when every file was read and judged, whatever the verdicts.
"""

import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def main() -> None:
    version = SchemaVersion.from_version(sys.argv[1])
    validator = JsonStrictValidator(version)
    for path in sys.argv[2:]:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            text = f.read()
        try:
            error = validator.validate_str(text)
        except ValueError as e:  # not JSON at all
            error = e
        print(json.dumps({"file": path, "valid": error is None, "error": str(error or "")[:500]}))


if __name__ == "__main__":
    main()
