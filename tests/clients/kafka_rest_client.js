// Confluent's Node.js REST Proxy client (npm kafka-rest), used exactly as its README shows, against the
// URL in argv[2]: list topics, a topic's partitions and the brokers, then produce the JSON lines of
// argv[4] as binary values to the topic argv[3]. The API key (env PINPIPE_API_KEY) goes as the password of
// Authorization: Basic, the way Confluent's clients authenticate. Prints one JSON summary line.
"use strict";
const KafkaRest = require("kafka-rest");

const [url, topic, lines] = process.argv.slice(2);
const basic = Buffer.from("pinpipe:" + process.env.PINPIPE_API_KEY).toString("base64");
const kafka = new KafkaRest({ url: url, headers: { Authorization: "Basic " + basic } });

function fail(step, err) {
  console.error(step + ": " + err);
  process.exit(1);
}

kafka.topics.list(function (err, topics) {
  if (err) fail("topics.list", err);
  kafka.topic(topic).partitions.list(function (err, partitions) {
    if (err) fail("partitions.list", err);
    kafka.brokers.list(function (err, brokers) {
      if (err) fail("brokers.list", err);
      const values = lines.split("\n").filter((line) => line.length > 0);
      kafka.topic(topic).produce(values, function (err, response) {
        if (err) fail("produce", err);
        console.log(
          JSON.stringify({
            topics: topics.map((t) => t.name),
            partitions: partitions.length,
            brokers: brokers.map((b) => b.id),
            offsets: response.offsets,
          })
        );
      });
    });
  });
});
