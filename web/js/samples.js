// When a workflow that names the pack's samples (deepdream_samples/...) is opened, ask the
// server to copy the missing ones into ComfyUI's input folder before the graph is built,
// so Load Image shows its picture at once. Queuing does the same on the server side
// (nodes/samples.py), so a workflow queued through the API needs none of this.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const PREFIX = "deepdream_samples/";

function sampleValues(graphData) {
  const values = [];
  const visit = (nodes) => {
    for (const node of nodes ?? []) {
      for (const value of node.widgets_values ?? []) {
        if (typeof value === "string" && value.startsWith(PREFIX)) values.push(value);
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
      await api.fetchApi("/deepdream/samples", { method: "POST", body: JSON.stringify({ values }) });
    } catch (error) {
      console.warn("DeepDream: could not provide the sample pictures", error);
    }
  },
});
