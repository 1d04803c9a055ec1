import { runSimCommand } from "../src/sim";
runSimCommand(process.argv.slice(2)).then(() => console.log("stopped cleanly"), (e) => { console.error("ERR", e.message); process.exit(1); });
