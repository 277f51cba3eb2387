using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Runtime;

public class CachingAllocatorSizeClassTests
{
    [Theory]
    [InlineData(1, 512)]
    [InlineData(512, 512)]
    [InlineData(513, 1024)]
    [InlineData(1 << 20, 1 << 20)]
    [InlineData((1 << 20) + 1, 2 << 20)]
    [InlineData(5L << 20, 6L << 20)]
    [InlineData(6L << 20, 6L << 20)]
    public void RequestsRoundUpToTheirSizeClass(long bytes, long expected) =>
        Assert.Equal(expected, CachingAllocator.RoundSize(bytes));

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void EmptyOrNegativeRequestsAreRejected(long bytes) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => CachingAllocator.RoundSize(bytes));
}
