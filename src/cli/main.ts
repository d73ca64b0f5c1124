#!/usr/bin/env node
// The title first, before the rest of rf is even loaded (so nothing is imported above this):
// it replaces the command line in `ps` and /proc/<pid>/cmdline, where a password in a URL or a
// --token would otherwise be readable by every user of the host for as long as rf takes to
// load (over a second on a loaded machine). Commands set a more precise one (`rf listen cache`).
const command = process.argv[2];
process.title = command !== undefined && /^[a-z]+$/.test(command) ? `rf ${command}` : 'rf';

await import('./program.js');
