/**
 * The page is one static file whatever the cameras. What differs, the cameras' names and
 * the one a `/?camera=` address asks for, goes into attributes of its <body>: the page's
 * script knows at once which pictures to open, before its first /state answers.
 */

const BODY = "<body>";

/** `&`, `<`, `>` and both quotes as entities: safe inside a quoted attribute. */
function attribute(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The page with `data-cameras` (the names as JSON, index = number) and, when the address
 * asked for one camera, `data-camera` (its number) on its <body>.
 */
export function pageWithCameras(html: string, names: readonly string[], camera: number | null): string {
  if (!html.includes(BODY)) throw new Error("the page has no <body> to carry its cameras");
  const chosen = camera === null ? "" : ` data-camera="${camera}"`;
  return html.replace(BODY, `<body data-cameras="${attribute(JSON.stringify(names))}"${chosen}>`);
}
