// The page rf ui serves is plain files: the build copies them beside the compiled server.
import { cpSync, rmSync } from 'node:fs';

rmSync('dist/ui/static', { recursive: true, force: true });
cpSync('src/ui/static', 'dist/ui/static', { recursive: true });
