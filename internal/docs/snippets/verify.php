<?php
// php verify.php < body; WEBHOOK_SECRET, WEBHOOK_HEADERS (JSON, lower-case names), BRAND

function verify(array $headers, string $body, string $secret, string $brand, int $tolerance = 300): bool {
    $fresh = fn($ts) => abs(time() - (int)$ts) <= $tolerance;
    if (isset($headers['webhook-signature'])) { // Standard Webhooks
        $id = $headers['webhook-id'];
        $ts = $headers['webhook-timestamp'];
        $key = base64_decode(preg_replace('/^whsec_/', '', $secret));
        $want = 'v1,' . base64_encode(hash_hmac('sha256', "$id.$ts.$body", $key, true));
        foreach (explode(' ', $headers['webhook-signature']) as $sig) {
            if (hash_equals($want, $sig)) {
                return $fresh($ts);
            }
        }
        return false;
    }
    $p = 'x-' . strtolower($brand) . '-'; // the seed scheme: the key is the secret string as shown
    $want = 'sha256=' . hash_hmac('sha256', $body, $secret);
    return $fresh($headers[$p . 'timestamp'] ?? 0) && hash_equals($want, $headers[$p . 'signature'] ?? '');
}

$ok = verify(json_decode(getenv('WEBHOOK_HEADERS'), true), file_get_contents('php://stdin'), getenv('WEBHOOK_SECRET'), getenv('BRAND') ?: 'Hookstream');
echo $ok ? "verified\n" : "invalid\n";
exit($ok ? 0 : 1);
