/**
 * Calls `onLine` for every line ffmpeg writes to `stream` (its stderr), the last one
 * included; ends when the stream does, also when the pipe breaks with the process.
 */
export async function forEachLine(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  try {
    for await (const chunk of stream) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  } catch {
    // the pipe broke with the process; what was read is kept
  }
  onLine(rest);
}
