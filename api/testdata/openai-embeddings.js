// Calls POST /v1/embeddings through the official openai npm client and
// prints what it got as one JSON line. Run by TestOpenAIClient
// (api/embeddings_test.go) with NODE_PATH pointing at the client.
const { OpenAI } = require('openai');

async function main() {
  const { BASE_URL, API_KEY, MODEL, INPUTS } = process.env;
  const client = new OpenAI({ baseURL: BASE_URL, apiKey: API_KEY, maxRetries: 0 });
  const input = JSON.parse(INPUTS);
  const asFloat = await client.embeddings.create({ model: MODEL, input, encoding_format: 'float' });
  // Without encoding_format the client asks for base64 and decodes it.
  const asDefault = await client.embeddings.create({ model: MODEL, input });
  const one = await client.embeddings.create({ model: MODEL, input: input[0], encoding_format: 'float' });
  let unknown = null;
  try {
    await client.embeddings.create({ model: 'no-such-model', input, encoding_format: 'float' });
  } catch (e) {
    unknown = { status: e.status, code: e.code, param: e.param, type: e.type, message: e.message };
  }
  console.log(JSON.stringify({ float: asFloat, default: asDefault, one, unknown }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
