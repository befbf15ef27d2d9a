"""The reference service for bench/service.py: ResNet-18 classification of uploads the way most
people would write it, with Flask, PyTorch and torchvision, run under gunicorn.

Each gunicorn worker imports this module and so loads its own copy of the network.  The weights
are a torchvision resnet18 state_dict (torch.save) named by $REF_WEIGHTS: the same file seer
converts, so both services run the same network.  See bench/reference/README.md.
"""

import io
import os

import torch
import torchvision
from flask import Flask, abort, jsonify, request
from PIL import Image, UnidentifiedImageError
from torchvision import transforms

torch.set_num_threads(1)  # one thread per worker, as seer's workers run one BLAS thread each
model = torchvision.models.resnet18()
model.load_state_dict(torch.load(os.environ["REF_WEIGHTS"], weights_only=True))
model.eval()
labels = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
preprocess = transforms.Compose([
    transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

app = Flask(__name__)
MAX_BODY = 20 << 20  # seerd's default max_body
app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # enforced by Flask on multipart bodies only


def error(status, code, message):
    return jsonify(error={"code": code, "message": message}), status


@app.errorhandler(413)
def too_large(_):
    return error(413, "too_large", "the body is over 20 MiB")


@app.post("/api/classify")
def classify():
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        data = upload.read() if upload else b""
    else:
        data = request.stream.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            abort(413)
    if not data:
        return error(400, "no_image", "send an image as the body or as a multipart 'file' part")
    try:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    except UnidentifiedImageError:
        return error(415, "unsupported_format", "not an image format Pillow can read")
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # truncated, corrupt, huge
        return error(422, "undecodable", "cannot decode the image: %s" % e)
    with torch.inference_mode():
        probs = model(preprocess(image).unsqueeze(0)).softmax(1)[0]
    top = probs.topk(5)
    return jsonify(topk=[{"index": i, "label": labels[i], "prob": p}
                         for i, p in zip(top.indices.tolist(), top.values.tolist())],
                   width=image.width, height=image.height, bytes=len(data))
