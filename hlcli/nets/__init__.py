"""The networks and their geometry: the VGG-19 layer table, the backbone specs and weights, the
feature extractor, the LPIPS networks and exact tiling plans. Imports only the ground floor."""
