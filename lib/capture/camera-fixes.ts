/**
 * What a user does about a camera that will not open: the same words whether the server
 * failed to start on it or `--list-cameras` found it so.
 */

/** For a camera another program holds (a video call, a second lancam server). */
export function inUseFix(device: string): string {
  return `close it (\`fuser -v ${device}\` names it)`;
}

/** For a camera the user may not open: on most distributions /dev/video* belong to the group `video`. */
export const PERMISSION_FIX = "add your user to the video group (sudo usermod -aG video $USER, then log in again)";
