# python3 verify.py < body; WEBHOOK_SECRET, WEBHOOK_HEADERS (JSON, lower-case names), BRAND
import base64, hashlib, hmac, json, os, sys, time


def verify(headers, body, secret, brand, tolerance=300):
    def fresh(ts):
        return abs(time.time() - int(ts)) <= tolerance

    if "webhook-signature" in headers:  # Standard Webhooks
        msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
        key = base64.b64decode(secret.removeprefix("whsec_"))
        mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        want = "v1," + base64.b64encode(mac).decode()
        return fresh(ts) and any(hmac.compare_digest(s, want) for s in headers["webhook-signature"].split(" "))
    p = f"x-{brand.lower()}-"  # the seed scheme: the key is the secret string as shown
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return fresh(headers[p + "timestamp"]) and hmac.compare_digest(headers.get(p + "signature", ""), want)


ok = verify(json.loads(os.environ["WEBHOOK_HEADERS"]), sys.stdin.buffer.read(), os.environ["WEBHOOK_SECRET"], os.environ.get("BRAND", "Hookstream"))
print("verified" if ok else "invalid")
sys.exit(0 if ok else 1)
