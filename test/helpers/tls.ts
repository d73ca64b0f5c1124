import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** A self-signed certificate for localhost and 127.0.0.1, made with openssl for one test run. */
export function makeTestCertificate(dir: string, name = 'server'): { key: string; cert: string } {
  const key = join(dir, `${name}-key.pem`);
  const cert = join(dir, `${name}-cert.pem`);
  const generated = spawnSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  if (generated.status !== 0 || !existsSync(cert)) {
    throw new Error(
      `openssl (apt-get install openssl) could not make a test certificate: ${generated.error ?? generated.stderr}`,
    );
  }
  return { key, cert };
}
