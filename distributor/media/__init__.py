"""The media library: images and documents with their credit, licence and rights expiry."""
