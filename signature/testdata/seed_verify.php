<?php
// Runs the PHP verifier from shared/seeds/000_78a8247fb9e0d761.txt unchanged.
// Usage: php seed_verify.php PAYLOAD_FILE SIGNATURE SECRET
// Exit 0: verified; 1: rejected; 2: the verifier failed.
// BEGIN seed verbatim
function verifySignature(string $payload, string $signature, string $secret): bool {
$expected = 'sha256=' . hash_hmac('sha256', $payload, $secret);
return hash_equals($expected, $signature);
}
// END seed verbatim

[, $payloadPath, $signature, $secret] = $argv;
try {
    $ok = verifySignature(file_get_contents($payloadPath), $signature, $secret);
} catch (Throwable $e) {
    fwrite(STDERR, $e->getMessage() . "\n");
    exit(2);
}
exit($ok ? 0 : 1);
