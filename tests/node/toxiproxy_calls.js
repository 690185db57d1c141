// Drives squall's fault proxy with the unmodified npm toxiproxy-node-client.
// Usage: node toxiproxy_calls.js <api url> <upstream host:port>
// Prints one JSON object with what each call returned; exits 1 on any failure.
"use strict";
const { Toxiproxy } = require("toxiproxy-node-client");

async function main() {
  const [url, upstream] = process.argv.slice(2);
  const tp = new Toxiproxy(url);
  const out = {};
  out.version = await tp.getVersion();

  const proxy = await tp.createProxy({ name: "node", listen: "127.0.0.1:0", upstream });
  out.created = proxy.toJson();

  const toxic = await proxy.addToxic({
    type: "latency",
    stream: "downstream",
    toxicity: 1,
    attributes: { latency: 50, jitter: 5 },
  });
  out.toxic = toxic.toJson();
  const updated = await toxic.update({ toxicity: 0.5, attributes: { latency: 75 } });
  out.updated = updated.toJson();
  out.fetchedToxic = (await proxy.getToxic(toxic.name)).toJson();

  const got = await tp.get("node");
  out.got = got.toJson();
  const disabled = await got.update({ enabled: false, listen: got.listen, upstream });
  out.disabled = disabled.toJson();

  out.all = Object.keys(await tp.getAll());
  const populated = await tp.populate([
    { name: "node", listen: got.listen, upstream },
    { name: "pop2", listen: "127.0.0.1:0", upstream },
  ]);
  out.populated = Object.fromEntries(
    Object.entries(populated).map(([name, p]) => [name, p.toJson()]),
  );

  await toxic.remove();
  await tp.reset();
  out.afterReset = (await tp.get("node")).toJson();

  try {
    await tp.get("missing");
    out.missing = "no error";
  } catch (err) {
    out.missing = String(err.message || err);
  }
  await (await tp.get("pop2")).remove();
  await (await tp.get("node")).remove();
  out.final = Object.keys(await tp.getAll());
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
