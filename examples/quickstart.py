import torch
from sklearn.datasets import load_digits

from gevb import build_model, make_rule, train_step

images, labels = load_digits(return_X_y=True)  # 1,797 8x8 digits, pixels 0..16
x, y = torch.tensor(images, dtype=torch.float32).view(-1, 1, 8, 8) / 8 - 1, torch.tensor(labels)
model = build_model("fc-vec", input_shape=(1, 8, 8), num_classes=10, sign="nonneg", seed=0)
rule, optimizer = make_rule("gevb", model), torch.optim.Adam(model.parameters(), lr=1e-3)
for batch in torch.randint(0, len(x), (50, 128)):  # 50 steps of batch 128
    loss = train_step(model, rule, optimizer, x[batch], y[batch])
print(f"loss {loss:.3f}, training error {(model(x).argmax(1) != y).float().mean():.1%}")
