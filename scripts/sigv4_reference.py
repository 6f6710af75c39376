#!/usr/bin/env python3
"""An independent SigV4 signer for tests: botocore's SigV4Auth at a fixed time.

DynamoDB Local accepts any signature, so tests/sigv4_reference.rs compares our signatures
with what botocore computes for the same request. Run it with the venv python that
scripts/sigv4-setup.sh prints.

stdin: one JSON object, or a JSON array of them (one process for many cases):

    {"method": "POST", "url": "https://dynamodb.us-east-1.amazonaws.com",
     "headers": {"content-type": "...", "x-amz-target": "..."},
     "body": "{}",                  # text, sent as UTF-8 (or "body_base64": raw bytes)
     "region": "us-east-1", "service": "dynamodb",
     "access_key": "AKID...", "secret_key": "...", "token": "..." (optional),
     "time_ms": 1700000000000}     # the signing time, milliseconds since the epoch

stdout: for each input, the JSON object of the headers botocore adds (Authorization,
X-Amz-Date and, with a token, X-Amz-Security-Token) plus Host, the value botocore signs
for the host header (derived from the URL: lower case, default port dropped).
stderr: botocore's canonical request and string to sign for each case, for diagnosis.
Exit status 2 on bad input or when botocore's clock could not be fixed.
"""

import base64
import datetime
import json
import sys

import botocore
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"


class RecordingSigV4Auth(SigV4Auth):
    """SigV4Auth that keeps the canonical request and string to sign it computed."""

    canonical = None
    to_sign = None

    def canonical_request(self, request):
        self.canonical = super().canonical_request(request)
        return self.canonical

    def string_to_sign(self, request, canonical_request):
        self.to_sign = super().string_to_sign(request, canonical_request)
        return self.to_sign


def fix_clock(when):
    """Make botocore's signer see `when` (naive UTC) as the current time.

    botocore >= 1.31 asks botocore.auth.get_current_datetime(); older releases called
    datetime.datetime.utcnow() through the module's `datetime` import. Both are patched
    here; sign() then checks that X-Amz-Date really is `when`.
    """
    if hasattr(botocore.auth, "get_current_datetime"):
        botocore.auth.get_current_datetime = lambda *args, **kwargs: when
    else:

        class FixedDatetime(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return when

            @classmethod
            def now(cls, tz=None):
                return when if tz is None else when.replace(tzinfo=tz)

        class DatetimeModule:
            datetime = FixedDatetime

            def __getattr__(self, name):
                return getattr(datetime, name)

        botocore.auth.datetime = DatetimeModule()


class BadInput(Exception):
    pass


def field(case, name, kind=str, required=True):
    value = case.get(name)
    if value is None:
        if required:
            raise BadInput(f"missing field {name!r}")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadInput(f"field {name!r} must be {kind.__name__}, got {value!r}")
    return value


def sign(case, index):
    if not isinstance(case, dict):
        raise BadInput(f"case {index} is not a JSON object")
    method = field(case, "method")
    url = field(case, "url")
    headers = field(case, "headers", dict, required=False) or {}
    for k, v in headers.items():
        if not isinstance(v, str):
            raise BadInput(f"header {k!r} must be a string")
    if "body_base64" in case:
        body = base64.b64decode(field(case, "body_base64"), validate=True)
    else:
        body = (field(case, "body", required=False) or "").encode("utf-8")
    time_ms = field(case, "time_ms", int)
    when = datetime.datetime.fromtimestamp(
        time_ms // 1000, tz=datetime.timezone.utc
    ).replace(tzinfo=None)
    credentials = Credentials(
        field(case, "access_key"),
        field(case, "secret_key"),
        field(case, "token", required=False),
    )

    fix_clock(when)
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    before = {k.lower() for k in request.headers.keys()}
    auth = RecordingSigV4Auth(credentials, field(case, "service"), field(case, "region"))
    auth.add_auth(request)

    added = {k: v for k, v in request.headers.items() if k.lower() not in before}
    want_date = when.strftime(SIGV4_TIMESTAMP)
    if added.get("X-Amz-Date") != want_date:
        raise BadInput(
            f"botocore {botocore.__version__} signed at {added.get('X-Amz-Date')!r}, "
            f"not at the requested {want_date!r}: its clock could not be fixed"
        )
    # The host value that went into the signature (botocore signs it from the URL unless
    # the request carries a Host header; the HTTP client then sends the same value).
    host = auth.headers_to_sign(request).get("host")
    if host is not None:
        added["Host"] = host
    print(
        f"--- case {index}: canonical request\n{auth.canonical}\n"
        f"--- case {index}: string to sign\n{auth.to_sign}",
        file=sys.stderr,
    )
    return added


def main():
    try:
        data = json.load(sys.stdin)
    except ValueError as e:
        print(f"sigv4_reference: stdin is not JSON: {e}", file=sys.stderr)
        return 2
    cases = data if isinstance(data, list) else [data]
    try:
        out = [sign(case, i) for i, case in enumerate(cases)]
    except (BadInput, ValueError) as e:
        print(f"sigv4_reference: {e}", file=sys.stderr)
        return 2
    json.dump(out if isinstance(data, list) else out[0], sys.stdout, indent=None)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
