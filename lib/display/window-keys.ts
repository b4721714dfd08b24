/** What a key pressed in the viewer's window does. */
export type WindowAction = "quit" | "fullscreen" | "info" | "mute" | "save";

/** The window's keys, in the order --help lists them. */
export const WINDOW_KEYS: readonly { keys: readonly string[]; action: WindowAction; help: string }[] = [
  { keys: ["f"], action: "fullscreen", help: "full screen on or off (the picture's shape kept, black bars)" },
  { keys: ["i"], action: "info", help: "show or hide the fps and latency line on the picture" },
  { keys: ["m"], action: "mute", help: "mute or unmute the sound (the level meter says so)" },
  { keys: ["s"], action: "save", help: "save the picture shown as a JPEG into the --out folder" },
  { keys: ["q", "ESC"], action: "quit", help: "say goodbye and exit (as closing the window does)" },
];

const ESC = 27;

/** The action of a key code from the window (letters in either case), or null for any other key. */
export function keyAction(code: number): WindowAction | null {
  if (code === ESC) return "quit";
  if (code < 0 || code > 0xffff) return null;
  const key = String.fromCharCode(code).toLowerCase();
  return WINDOW_KEYS.find((k) => k.keys.includes(key))?.action ?? null;
}

/** The keys as --help shows them, one per line. */
export function windowKeysHelp(): string {
  const rows = WINDOW_KEYS.map((k) => [k.keys.join(", "), k.help] as const);
  const width = Math.max(...rows.map(([keys]) => keys.length));
  return rows.map(([keys, help]) => `  ${keys.padEnd(width)}  ${help}`).join("\n");
}
