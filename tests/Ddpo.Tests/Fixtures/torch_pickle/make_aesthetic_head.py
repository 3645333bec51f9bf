# Makes aesthetic_head.pth: a tiny random LAION-style aesthetic MLP (layers.{0,2,4,6,7}, as
# improved-aesthetic-predictor's MLP), saved as the LAION file is (torch.save of the state dict), and
# aesthetic_head.expected.json: its scores of fixed inputs. Run with Debian's python3-torch (1.13): /usr/bin/python3 make_aesthetic_head.py
import json
import torch
from torch import nn

torch.manual_seed(7)
layers = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.Linear(16, 8), nn.Dropout(0.2), nn.Linear(8, 4), nn.Dropout(0.1),
                       nn.Linear(4, 4), nn.Linear(4, 1))
model = nn.Module()
model.layers = layers
torch.save(model.state_dict(), "aesthetic_head.pth")
x = torch.randn(3, 8)
x = x / x.norm(dim=-1, keepdim=True)
with torch.no_grad():
    y = layers.eval()(x).squeeze(1)
json.dump({"inputs": x.tolist(), "scores": y.tolist()}, open("aesthetic_head.expected.json", "w"), indent=1)
