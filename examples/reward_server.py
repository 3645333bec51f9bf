#!/usr/bin/env python3
"""A reward server for `ddpo train --set reward_fn=remote` (JSON over HTTP, standard library only).

Run:   python3 examples/reward_server.py --port 8090
Train: ddpo train --preset compressibility --set reward_fn=remote --set reward.server.base_url=http://127.0.0.1:8090

Replace score() with your model (decode the image with PIL: Image.open(io.BytesIO(data))).
"""
import argparse, base64, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def score(image: bytes, prompt: str, metadata: dict) -> float:
    return len(image) / 1000.0  # example: encoded size in kB (larger = more detail)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path != "/score":
            return self.reply(404, {"error": f"no route {self.path}"})
        try:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            images = [base64.b64decode(s) for s in req["images"]]
            rewards = [score(i, p, m) for i, p, m in zip(images, req["prompts"], req["metadata"])]
            self.reply(200, {"rewards": rewards, "details": {"prompt_words": [len(p.split()) for p in req["prompts"]]}})
        except Exception as e:  # a 500 makes the trainer retry, then stop with this message
            self.reply(500, {"error": repr(e)})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
