// node verify.js < body; WEBHOOK_SECRET, WEBHOOK_HEADERS (JSON, lower-case names), BRAND
const crypto = require("crypto");

function verify(headers, body, secret, brand, toleranceSec = 300) {
  const eq = (a, b) => a.length === b.length && crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));
  const fresh = (ts) => Math.abs(Date.now() / 1000 - Number(ts)) <= toleranceSec;
  if (headers["webhook-signature"]) { // Standard Webhooks
    const id = headers["webhook-id"], ts = headers["webhook-timestamp"];
    const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
    const want = "v1," + crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest("base64");
    return fresh(ts) && headers["webhook-signature"].split(" ").some((s) => eq(s, want));
  }
  const p = `x-${brand.toLowerCase()}-`; // the seed scheme: the key is the secret string as shown
  const want = "sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex");
  return fresh(headers[p + "timestamp"]) && eq(headers[p + "signature"] || "", want);
}

const body = require("fs").readFileSync(0);
const ok = verify(JSON.parse(process.env.WEBHOOK_HEADERS), body, process.env.WEBHOOK_SECRET, process.env.BRAND || "Hookstream");
console.log(ok ? "verified" : "invalid");
process.exit(ok ? 0 : 1);
