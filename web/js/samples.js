// When a workflow that names the pack's samples (deepdream_astronaut.png, deepdream_samples/...)
// is opened, ask the server to copy the missing ones into ComfyUI's input folder before the
// graph is built, then reload the node definitions so Load Image and Load Video list them:
// the picture shows at once and the 2026 frontend does not flag it as missing media.
// Queuing does the same on the server side (nodes/samples.py), so a workflow queued through
// the API needs none of this.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const PREFIX = "deepdream_samples/";
const TOP_PREFIX = "deepdream_";

function isSample(value) {
  return typeof value === "string" && (value.startsWith(PREFIX) || (value.startsWith(TOP_PREFIX) && !value.includes("/")));
}

function sampleValues(graphData) {
  const values = [];
  const visit = (nodes) => {
    for (const node of nodes ?? []) {
      for (const value of node.widgets_values ?? []) {
        if (isSample(value)) values.push(value);
      }
    }
  };
  visit(graphData?.nodes);
  for (const subgraph of graphData?.definitions?.subgraphs ?? []) visit(subgraph.nodes);
  return values;
}

app.registerExtension({
  name: "DeepDream.Samples",
  async beforeConfigureGraph(graphData) {
    const values = sampleValues(graphData);
    if (!values.length) return;
    try {
      const response = await api.fetchApi("/deepdream/samples", { method: "POST", body: JSON.stringify({ values }) });
      const answer = await response.json();
      if (answer?.copied > 0 && typeof app.reloadNodeDefs === "function") {
        await app.reloadNodeDefs(); // the new files in the lists before the graph's widgets are checked
      }
    } catch (error) {
      console.warn("DeepDream: could not provide the sample pictures", error);
    }
  },
});
