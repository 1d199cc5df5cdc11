// Decrypts a FaceAuth result under Node with the crypto-js npm package, two ways:
//   1. the quick start's decryptResponse, copied verbatim from the seed document;
//   2. demo_assets/faceauth-client.js (the module the demo page uses), which also checks
//      the HMAC-SHA256 integrity tag.
// Input on stdin: {"encrypted_data": {...}, "secret_key": "..."}.
// Output on stdout: {"seed": <payload>, "client": <payload>, "hmac_verified": bool,
//                    "wrong_key_error": <code the client gives for a wrong secret>}.
'use strict';

const path = require('path');
const CryptoJS = require('crypto-js');

// ---- verbatim from the quick start ("Decryption Example (JavaScript)") ----
// Using CryptoJS library
function decryptResponse(encryptedPayload, secretKey) {
  const encrypted = CryptoJS.enc.Base64.parse(encryptedPayload);
  
  // Extract IV and ciphertext
  const iv = CryptoJS.lib.WordArray.create(encrypted.words.slice(0, 4));
  const ciphertext = CryptoJS.lib.WordArray.create(encrypted.words.slice(4));
  
  // Derive key
  const key = CryptoJS.SHA256(secretKey);
  
  // Decrypt
  const decrypted = CryptoJS.AES.decrypt(
    { ciphertext: ciphertext },
    key,
    { iv: iv, mode: CryptoJS.mode.CBC, padding: CryptoJS.pad.Pkcs7 }
  );
  
  return JSON.parse(decrypted.toString(CryptoJS.enc.Utf8));
}
// ---- end of the quick start's code ----

function readStdin() {
  return new Promise((resolve, reject) => {
    let data = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => { data += chunk; });
    process.stdin.on('end', () => resolve(data));
    process.stdin.on('error', reject);
  });
}

async function main() {
  const input = JSON.parse(await readStdin());
  const data = input.encrypted_data;
  const secret = input.secret_key;

  // The client module looks for CryptoJS on the global object, as in a page.
  globalThis.CryptoJS = CryptoJS;
  const FaceAuth = require(path.join(__dirname, '..', '..', 'demo_assets', 'faceauth-client.js'));

  const seed = decryptResponse(data.encrypted_payload, secret);
  const client = FaceAuth.decryptResult(data, secret);

  let wrongKeyError = null;
  try {
    FaceAuth.decryptResult(data, secret + 'x');
  } catch (e) {
    wrongKeyError = e.code;
  }

  process.stdout.write(JSON.stringify({
    seed: seed,
    client: client.payload,
    hmac_verified: client.hmacVerified,
    wrong_key_error: wrongKeyError,
  }));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
