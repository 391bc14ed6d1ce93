"""The original application's web tier, for comparison: Flask, one atomic
INCR per request, as in shared/seed (app.py calling cache.incr('visits')).
Run under gunicorn by bench/bench.py."""
import os

import redis
from flask import Flask

app = Flask(__name__)
cache = redis.Redis(host=os.environ.get("REDIS_HOST", "redis"),
                    port=int(os.environ.get("REDIS_PORT", "6379")))


@app.route("/")
def hello():
    count = cache.incr("visits")
    return "Page visited {} times".format(count)
