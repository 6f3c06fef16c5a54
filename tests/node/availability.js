// Cronofy's Node SDK against a calsync server: availability, then the available-period
// methods only this SDK has. Prints one JSON object; tests/calendars/test_node_availability.py
// runs it and checks the answers.
const Cronofy = require("cronofy");

async function main() {
  const client = new Cronofy({ access_token: process.env.CALSYNC_TOKEN });
  client.urls.api = process.env.CALSYNC_BASE_URL;
  const sub = process.env.CALSYNC_SUB;
  const availability = await client.availability({
    participants: [{ members: [{ sub }], required: "all" }],
    required_duration: { minutes: 60 },
    available_periods: [{ start: "2026-12-01T09:00:00Z", end: "2026-12-01T15:00:00Z" }],
  });
  await client.upsertAvailablePeriod({
    available_period_id: "node-1",
    start: "2026-12-02T09:00:00Z",
    end: "2026-12-02T12:00:00Z",
  });
  const listed = await client.listAvailablePeriods({
    from: "2026-12-01",
    to: "2026-12-03",
    tzid: "Etc/UTC",
  });
  await client.deleteAvailablePeriods({ available_period_id: "node-1" });
  const after = await client.listAvailablePeriods({
    from: "2026-12-01",
    to: "2026-12-03",
    tzid: "Etc/UTC",
  });
  process.stdout.write(JSON.stringify({ availability, listed, after }));
}

main().catch((error) => {
  process.stderr.write(String(error && (error.stack || error)) + "\n");
  if (error && error.error) process.stderr.write(JSON.stringify(error.error) + "\n");
  process.exit(1);
});
