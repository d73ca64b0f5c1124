#!/usr/bin/env node
// The title first, before the rest of rf is even loaded: it hides the command line (title.ts).
import './title.js';

await import('./program.js');
