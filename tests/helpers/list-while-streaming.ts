// A child for tests/list-cameras.test.ts: opens camera <index> (the fake, preloaded) and
// takes a frame, so it holds the camera's buffers as a program streaming from it does,
// then prints what `--list-cameras` prints. The fake lives in one process: a second
// process would not see this one's hold.
import { listCameras } from "../../lib/capture/camera-list.ts";
import { cv } from "../../lib/native/cv.ts";

const index = Number(process.argv[2]);
const cap = new (cv().Capture)();
if (!(await cap.open(index)) || !(await cap.grab())) {
  console.error(`cannot stream from camera:${index}`);
  process.exit(1);
}
process.stdout.write(listCameras());
cap.release();
