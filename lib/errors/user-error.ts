/**
 * The one base class of errors meant for the person running the program.
 *
 * Its message is the whole story (what went wrong, and what to do about it), so the
 * entry scripts print it as one line and exit 1, without a stack. An error that is
 * not a UserError is a bug and is printed with its stack. Extending this class is the
 * only way to be treated as the user's problem: there is no list of names to keep in step.
 */
export class UserError extends Error {
  override name = "UserError";
  /** The exit status the entry script ends with (1 unless the error says otherwise, e.g. 2 for a device that does not exist). */
  readonly exitCode: number;

  constructor(message: string, options?: ErrorOptions & { exitCode?: number }) {
    super(message, options);
    this.exitCode = options?.exitCode ?? 1;
  }
}
