import type { Command } from 'commander';
import { Option } from 'commander';
import { lazy, register } from './commands.js';
import { options as o } from './options.js';

/** `rf ui`, declared as every command is (commands.ts), in a file of its own. */
export function registerUi(program: Command): void {
  register(program, {
    name: 'ui',
    description:
      'serve a read-only page on the archive: pick a moment on a time axis, see its restore plan and a key’s history',
    options: [
      o.store(),
      ...o.repo('read the archive from this bucket alone: s3://<bucket>/<prefix>'),
      o.name('only this source (default: every source, the first shown)', false),
      new Option(
        '--listen <host:port>',
        'serve the page on this address (beyond loopback only with a token)',
      ).default('127.0.0.1:7380'),
      new Option(
        '--token-file <file>',
        'require the token on the first line of this file (or RF_UI_TOKEN); the page takes it as #token=<token>',
      ),
      o.tz('IANA time zone for times without an offset (default: this machine)'),
      o.json('say where the page is served as JSON'),
    ],
    help: `The page reads the archive as rf info, rf restore --dry-run and rf log do (through a running
rf listen), shows the exact rf restore command for the moment picked, and never runs it.

Examples:
  rf ui --store /var/lib/rf
  rf ui --store /var/lib/rf --listen 10.0.0.5:7380 --token-file /etc/rf/ui-token`,
    run: lazy(() => import('./ui.js')),
  });
}
