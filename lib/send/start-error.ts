import { UserError } from "../errors/user-error.ts";

/** The server could not start (port in use, bad address, a ladder no viewer can be told); the message says what to do. */
export class StartError extends UserError {
  override name = "StartError";
}
