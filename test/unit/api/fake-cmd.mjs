// A stand-in for systemctl/journalctl in the unit tests of the API's process handling (argv, exit
// code, streaming, kill on disconnect). The real commands are exercised on the test machines
// (test/integration/api-remote-journal.test.ts).
//   prints `ARGS <json argv>` and `PID <pid>`; with --follow prints `tick N` every 100 ms forever,
//   otherwise one line per --lines=N and exits with $FAKE_EXIT (default 0). `ERR` goes to stderr.
const args = process.argv.slice(2);
process.stdout.write(`ARGS ${JSON.stringify(args)}\nPID ${process.pid}\n`);
process.stderr.write('ERR from stderr\n');
if (args.includes('--follow')) {
  let n = 0;
  setInterval(() => process.stdout.write(`tick ${++n}\n`), 100);
} else {
  const lines = Number((args.find((a) => a.startsWith('--lines=')) ?? '--lines=2').slice(8));
  for (let i = 1; i <= lines; i++) process.stdout.write(`line ${i}\n`);
  process.exitCode = Number(process.env.FAKE_EXIT ?? 0);
}
