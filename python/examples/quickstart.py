"""PopSteer from Python, load to steered top-10: python3 quickstart.py [DATA [EPOCHS]]."""
import os
import sys

import popsteer as ps

shared = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared")
lastfm, authors = (os.path.join(shared, p) for p in ("data/lastfm/popsteer/lastfm.inter",
                                                     "models/sasrec-lastfm.safetensors"))
data = sys.argv[1] if len(sys.argv) > 1 else lastfm if os.path.exists(lastfm) else ps.synth("demo.inter")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
ds = ps.Dataset.load(data)
print(ds, ds.stats()["sequence_length"])
if data == lastfm and os.path.exists(authors):
    model = ps.SASRec.load(authors)                            # the authors' RecBole model, converted
else:
    model = ps.SASRec.train(ds, epochs=epochs, progress=lambda p: p.stage == "epoch" and print(p))
sae = ps.SAE.train(model, ds, epochs=min(epochs, 10))         # 4,096 latents, k = 32
latents = ps.probe(model, sae, ds)                             # Cohen's d of every latent
steered = ps.Steerer(model, sae, latents, alpha=1.5, neurons=256)
for name, rec in (("SASRec", model), ("PopSteer", steered)):
    m = ps.evaluate(rec, ds, split="test")
    print(f"{name:9} NDCG@10 {m['ndcg@10']:.4f}  Gini@10 {m['gini@10']:.4f}  APLT@10 {m['aplt@10']:.4f}")
user = ds.user_sequence(1)                                     # user 1's whole history, oldest first
print("steered top-10:", [ds.item_tokens[i] for i in steered.recommend([user], k=10)[0]])
