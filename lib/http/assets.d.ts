// The browser view's files are embedded as text (`with { type: "text" }`), so that a
// compiled executable serves them without a node_modules folder or the internet.
declare module "*.css" {
  const text: string;
  export default text;
}
declare module "*/page.js" {
  const text: string;
  export default text;
}
declare module "uplot/dist/uPlot.iife.min.js" {
  const text: string;
  export default text;
}
