"""Data-set loaders, each returning :class:`~wormhole.data.clouds.PointClouds`."""
