// Runs the Node verifier from shared/seeds/000_78a8247fb9e0d761.txt unchanged.
// Usage: node seed_verify.js PAYLOAD_FILE SIGNATURE SECRET
// Exit 0: verified; 1: rejected; 2: the verifier threw (also a rejection,
// which Express would answer with a 500).
// BEGIN seed verbatim
const crypto = require('crypto');
function verifyWebhookSignature(payload, signature, secret) {
const expected = 'sha256=' + crypto
.createHmac('sha256', secret)
.update(payload)
.digest('hex');
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(expected)
);
}
// END seed verbatim

const fs = require('fs');
const [payloadPath, signature, secret] = process.argv.slice(2);
let ok;
try {
  ok = verifyWebhookSignature(fs.readFileSync(payloadPath), signature, secret);
} catch (e) {
  console.error(e.message);
  process.exit(2);
}
process.exit(ok ? 0 : 1);
