// A journalctl stand-in that writes as fast as its stdout takes it, forever, and keeps the running
// total of bytes accepted by write() in the file $FLOOD_COUNT (rewritten every 50 ms). Whatever the
// agent buffers for a stalled client is bounded by what this process managed to write.
import { writeFileSync } from 'node:fs';

const block = Buffer.alloc(64 * 1024, 'j');
let total = 0;
const pump = () => {
  for (;;) {
    total += block.length;
    if (!process.stdout.write(block)) return void process.stdout.once('drain', pump);
  }
};
setInterval(() => writeFileSync(process.env.FLOOD_COUNT, String(total)), 50);
pump();
