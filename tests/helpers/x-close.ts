import { dlopen, FFIType, JSCallback, ptr } from "bun:ffi";

/**
 * Asks a window to close the way a window manager's close button does: a
 * WM_PROTOCOLS / WM_DELETE_WINDOW client message (the test display has no window
 * manager, and xdotool here cannot send one). False when the window is already gone
 * (a viewer that is ending closed it): Xlib's own handler would end the test process
 * on that error, so this one only notes it.
 */
export function requestWindowClose(display: string, windowId: number): boolean {
  const { symbols: X, close } = dlopen("libX11.so.6", {
    XOpenDisplay: { args: [FFIType.ptr], returns: FFIType.ptr },
    XInternAtom: { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.u64 },
    XSendEvent: { args: [FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.i64, FFIType.ptr], returns: FFIType.i32 },
    XSync: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    XSetErrorHandler: { args: [FFIType.ptr], returns: FFIType.ptr },
    XCloseDisplay: { args: [FFIType.ptr], returns: FFIType.i32 },
  });
  let errors = 0;
  // Called from inside XSync, on this thread.
  const onError = new JSCallback(() => {
    errors++;
    return 0;
  }, { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 });
  const previous = X.XSetErrorHandler(onError.ptr);
  const cstr = (s: string) => ptr(Buffer.from(s + "\0"));
  const dpy = X.XOpenDisplay(cstr(display));
  try {
    if (!dpy) throw new Error(`cannot open display ${display}`);
    // XClientMessageEvent on LP64: type@0, serial@8, send_event@16, display@24, window@32,
    // message_type@40, format@48, data.l[0..4]@56; the XEvent union is 192 bytes.
    const ev = new DataView(new ArrayBuffer(192));
    ev.setInt32(0, 33, true); // ClientMessage
    ev.setInt32(16, 1, true);
    ev.setBigUint64(24, BigInt(dpy), true);
    ev.setBigUint64(32, BigInt(windowId), true);
    ev.setBigUint64(40, BigInt(X.XInternAtom(dpy, cstr("WM_PROTOCOLS"), 0)), true);
    ev.setInt32(48, 32, true);
    ev.setBigUint64(56, BigInt(X.XInternAtom(dpy, cstr("WM_DELETE_WINDOW"), 0)), true);
    if (X.XSendEvent(dpy, BigInt(windowId), 0, 0n, ptr(ev.buffer)) === 0) throw new Error("XSendEvent failed");
    // Waits for the server's answer, so an error (BadWindow: the window is gone) comes now, to onError.
    X.XSync(dpy, 0);
    return errors === 0;
  } finally {
    if (dpy) X.XCloseDisplay(dpy);
    X.XSetErrorHandler(previous);
    onError.close();
    close();
  }
}
