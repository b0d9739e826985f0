"""FID and KID against the reference code (the test extra): pytorch-fid 0.3.0's network and
Fréchet distance, clean-fid 0.1.35's resize, torch-fidelity 0.4.0's KID, NeuralCompression's
patches (its unfold code restated)."""
import warnings

import numpy as np
import pytest
import torch

from hlcli.metrics import fid as FD
from hlcli.nets import inception as I

pytest.importorskip("pytorch_fid")


@pytest.fixture(scope="module")
def state_dict():
    return I.random_state_dict(3)


def _pfid_net(sd, dims, **kw):
    import pytorch_fid.inception as pfi
    orig = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: {n: v.clone() for n, v in sd.items()}
    try:
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]], **kw).eval()
    finally:
        pfi.load_state_dict_from_url = orig


def _pfid_feats(net, x):
    with torch.no_grad():
        p = net(x)[0]
    return torch.nn.functional.adaptive_avg_pool2d(p, 1).flatten(1).double()


def test_state_dict_keys_are_pytorch_fids(state_dict):
    import pytorch_fid.inception as pfi
    orig = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: state_dict
    try:
        theirs = pfi.fid_inception_v3().state_dict()  # strict load: same keys and shapes
    finally:
        pfi.load_state_dict_from_url = orig
    assert set(theirs) == set(state_dict)
    I.check_state_dict(theirs)  # and theirs loads here


@pytest.mark.parametrize("dims", [64, 192, 768, 2048])
def test_features_equal_pytorch_fid(state_dict, dims):
    g = torch.Generator().manual_seed(dims)
    x = torch.randint(0, 256, (2, 3, 96, 128), generator=g).float()
    ours = I.features(I.build(I.check_state_dict(state_dict), dims), x, "pytorch-fid")
    theirs = _pfid_feats(_pfid_net(state_dict, dims), x / 255)
    assert ours.shape == (2, dims)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())
    net = I.build(I.check_state_dict(state_dict), dims)
    assert not hasattr(net, "Mixed_7a") or dims == 2048  # only the blocks needed


@pytest.mark.parametrize("shape", [(64, 64), (300, 451), (37, 513), (512, 512), (299, 299), (299, 120)])
def test_clean_resize_is_clean_fids(shape):
    make_resizer = pytest.importorskip("cleanfid.resize").make_resizer
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    ref = make_resizer("PIL", False, "bicubic", (299, 299))(a).transpose(2, 0, 1)
    assert np.array_equal(I.resize_clean_pil(a), ref)
    t = I.resize_clean(torch.from_numpy(a).permute(2, 0, 1)[None].float())[0].numpy()
    assert np.array_equal(t, ref)


def _feats(n, d, k, shift, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, d)) * (np.arange(1, k + 1)[:, None] ** -0.7)
    return np.maximum(rng.standard_normal((n, k)) @ a + 0.3 + shift, 0)


@pytest.mark.parametrize("n,d,k", [(600, 64, 64), (300, 192, 150), (120, 192, 192), (10, 64, 64)])
def test_fid_equals_pytorch_fid(n, d, k):
    from pytorch_fid.fid_score import calculate_frechet_distance
    x, y = _feats(n, d, k, 0.0, 1), _feats(n, d, k, 0.05, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy's deprecation of sqrtm(disp=)
        ref = calculate_frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert FD.fid(x, y) == pytest.approx(ref, rel=1e-6)
    assert FD.frechet_distance(*FD.moments(x), *FD.moments(y)) == pytest.approx(ref, rel=1e-6)


def test_fid_identical_sets_is_zero_and_offset_path():
    x = _feats(50, 64, 64, 0, 3)
    assert abs(FD.fid(x, x)) < 1e-9
    mu = np.zeros(3)
    s = np.diag([1.0, 0.0, 0.0])
    assert FD.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(FD.FIDError, match="non-finite"):
        FD.frechet_distance(mu, np.full((3, 3), np.nan), mu, s)
    for bad in (-np.eye(3), np.diag([1.0, 1.0, -1.0])):
        with pytest.raises(FD.FIDError, match="negative eigenvalue"):
            FD.frechet_distance(mu, bad, mu, np.eye(3))
        with pytest.raises(FD.FIDError, match="negative eigenvalue"):
            FD.frechet_distance(mu, np.eye(3), mu, bad)


@pytest.mark.parametrize("n,d", [(300, 64), (1100, 64)])
def test_kid_equals_torch_fidelity(n, d):
    kid_features_to_metric = pytest.importorskip("torch_fidelity.metric_kid").kid_features_to_metric
    x, y = _feats(n, d, d, 0.0, 4), _feats(n, d, d, 0.02, 5)
    ours = FD.kid(x, y, seed=2020)
    ref = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=100,
                                 kid_subset_size=min(n, 1000), rng_seed=2020, verbose=False, kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    assert ours.mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-6)
    assert ours.std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-6, abs=1e-12)


def test_patches_are_neuralcompressions():
    import torch.nn.functional as F
    rng = np.random.default_rng(0)
    assert FD.cut_patches(np.zeros((63, 200, 3), np.uint8), 64).shape == (0, 64, 64, 3)  # unfold refuses it
    for h, w, s in [(512, 512, 64), (300, 451, 64), (100, 90, 64), (95, 97, 64), (256, 384, 256), (64, 200, 64)]:
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        t = torch.from_numpy(a).permute(2, 0, 1)[None]
        ref = [F.unfold(t.double(), kernel_size=s, stride=s).permute(0, 2, 1).reshape(-1, 3, s, s)]
        if h >= 1.5 * s and w >= 1.5 * s:
            ref.append(F.unfold(t[:, :, s // 2:, s // 2:].double(), kernel_size=s, stride=s)
                       .permute(0, 2, 1).reshape(-1, 3, s, s))
        ref = torch.cat(ref).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        ours = FD.cut_patches(a, s)
        assert ours.shape == ref.shape and np.array_equal(ours, ref), (h, w, s)
        assert FD.patch_count(h, w, s) == len(ref)


def test_small_set_note():
    assert FD.small_set_note(3000, 2048, None) is None
    note = FD.small_set_note(100, 2048, None)
    assert "singular" in note and "--fid-patches" in note and "--fid-dims 64" in note
    assert "--fid-patches" not in FD.small_set_note(600, 2048, 64)
