/** Prometheus's own linter (Debian package prometheus); null where it is not installed. */
export const PROMTOOL = Bun.which("promtool");

/** Why a promtool test is skipped, said once per test file where it is absent. */
export function promtoolSkipReason(): string | null {
  if (PROMTOOL) return null;
  const reason = "promtool not found (Debian package prometheus; bash scripts/setup.sh --test installs it): the /metrics lint is skipped";
  console.warn(reason);
  return reason;
}

/** `promtool check metrics` over an exposition text: its exit code and what it said. */
export async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  if (!PROMTOOL) throw new Error("promtool is not installed");
  const proc = Bun.spawn([PROMTOOL, "check", "metrics"], { stdin: new Blob([text]), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, output: (out + err).trim() };
}
