"""Optional outside services: IPFS pinning (Pinata or an IPFS node) and the AleaArt frontend's MongoDB.

    ipfs.py       the pinning clients
    mongo.py      the frontend's generatedImages document
    publisher.py  pins and records each image once, retrying in the background
"""
