# An independent Standard Webhooks (https://www.standardwebhooks.com) verifier,
# Python stdlib only, to cross-check the Go signer in another language.
# Usage: python3 standard_verify.py PAYLOAD_FILE WEBHOOK_ID WEBHOOK_TIMESTAMP WEBHOOK_SIGNATURE SECRET
# Exit 0 if any "v1," signature in WEBHOOK_SIGNATURE (space-separated) is the
# base64 HMAC-SHA256, keyed with the base64-decoded part of the whsec_ SECRET,
# of "id.timestamp.body"; 1 otherwise; 2 on an error (bad secret). No
# timestamp tolerance check.
import base64
import hashlib
import hmac
import sys


def verify(body: bytes, msg_id: str, timestamp: str, header: str, secret: str) -> bool:
    if not secret.startswith("whsec_"):
        raise ValueError("secret lacks whsec_ prefix")
    key = base64.b64decode(secret[len("whsec_"):], validate=True)
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for versioned in header.split(" "):
        version, _, sig = versioned.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


if __name__ == "__main__":
    payload_path, msg_id, timestamp, header, secret = sys.argv[1:6]
    with open(payload_path, "rb") as f:
        body = f.read()
    try:
        ok = verify(body, msg_id, timestamp, header, secret)
    except Exception as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if ok else 1)
