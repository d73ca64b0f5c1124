/** The rf command line: commander wired to every command (entered through main.ts). */
import { Command, CommanderError, Option } from 'commander';
import { RfError } from '../errors.js';
import { setWarningSink, warnOnce } from '../warnings.js';
import { commandLineSecrets } from './argv-secrets.js';
import { registerCommands, requiredOptions } from './commands.js';
import { registerUi } from './commands-ui.js';
import { applyConfig } from './config-file.js';
import { version } from './options.js';
import { out, reportError } from './output.js';

// `rf info | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const program = new Command();

program
  .name('rf')
  .description(
    'Point-in-time recovery for Redis: archive every write a master propagates, restore to any millisecond.',
  )
  .version(version())
  // Commander's own messages are turned into RF_USAGE errors below, printed like every other.
  .configureOutput({ outputError: () => undefined })
  .exitOverride();

registerCommands(program);
registerUi(program);

// Every command reads the same config file and RF_* variables: flags > environment > file > defaults.
for (const cmd of program.commands) {
  cmd.addOption(new Option('--config <file>', 'YAML file of option values (env RF_CONFIG)'));
}
program.hook('preAction', async (_program, actionCommand) => {
  await applyConfig(program, actionCommand);
  // Checked here rather than by commander, which would ask for --until before it names an
  // unknown --untill, and before the config file could supply --aof-dir.
  for (const long of requiredOptions(actionCommand)) {
    const option = actionCommand.options.find((o) => o.long === `--${long}`)!;
    if (actionCommand.getOptionValue(option.attributeName()) !== undefined) continue;
    throw new RfError('RF_USAGE', `rf ${actionCommand.name()} needs --${long}`, {
      details: { option: `--${long}` },
      hint: `rf ${actionCommand.name()} -h shows its options and examples`,
    });
  }
});

/** What commander rejects (unknown command or option, a missing value) as RF_USAGE, exit 2. */
function usageError(err: CommanderError): RfError {
  const [first = err.message, ...rest] = err.message.split('\n');
  const message = first.replace(/^error: /, '');
  // Commander quotes what it rejects: 'frobnicate', '--untill', or '--from <what>' (its flags).
  const named = /'([^']+)'/.exec(message)?.[1]?.split(' ')[0];
  const command = process.argv.slice(2).find((a) => program.commands.some((c) => c.name() === a));
  const suggestion = rest.join(' ').trim();
  const kind =
    err.code === 'commander.unknownCommand'
      ? 'command'
      : err.code === 'commander.unknownOption'
        ? 'option'
        : err.code === 'commander.invalidArgument'
          ? 'option'
          : 'argument';
  const help = `run rf${command === undefined ? '' : ` ${command}`} -h for usage and examples`;
  return new RfError('RF_USAGE', message, {
    details: named === undefined ? {} : { [kind]: named },
    hint: suggestion === '' ? help : `${suggestion.replace(/^\((.*)\)$/, '$1')} Then ${help}`,
  });
}

setWarningSink((text) => out.note(`rf: warning: ${text}`));
const json = process.argv.includes('--json');
const secrets = commandLineSecrets(process.argv.slice(2));
if (secrets.length > 0) {
  warnOnce(
    `${secrets.join(', ')} on the command line may be read by other users of this host (ps, /proc): use --password-file or RF_PASSWORD, --token-file or RF_TOKEN${secrets.includes('--sentinel') ? ', --sentinel-password-file for the sentinels' : ''}`,
  );
}
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version exit 0; `rf` with no command prints the help and is bad usage.
    if (err.exitCode === 0) process.exitCode = 0;
    else if (err.code === 'commander.help') process.exitCode = 2;
    else process.exitCode = reportError(usageError(err), json);
  } else {
    process.exitCode = reportError(err, json);
  }
}
