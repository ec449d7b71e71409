# Runs the Python verifier from shared/seeds/000_78a8247fb9e0d761.txt unchanged,
# except for indentation: the seed page lost all leading whitespace, which
# Python needs, so the body is indented back. The test that matches this
# block against the seed compares lines without their leading whitespace.
# Usage: python3 seed_verify.py PAYLOAD_FILE SIGNATURE SECRET
# Exit 0: verified; 1: rejected; 2: the verifier raised.
# BEGIN seed verbatim
import hmac, hashlib
def verify_signature(payload: bytes, signature: str, secret: str) -> bool:
    expected = 'sha256=' + hmac.new(
        secret.encode(), payload, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, signature)
# END seed verbatim

import sys

if __name__ == "__main__":
    payload_path, sig, key = sys.argv[1:4]
    with open(payload_path, "rb") as f:
        body = f.read()
    try:
        ok = verify_signature(body, sig, key)
    except Exception as e:  # a raise is a rejection too, but not the "false" we test for
        print(e, file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if ok else 1)
